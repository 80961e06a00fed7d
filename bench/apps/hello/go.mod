module gotel.bench/hello

go 1.21
