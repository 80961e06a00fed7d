module gotel.bench/uprobecost

go 1.21
