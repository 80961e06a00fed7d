module gotel.test/loop

go 1.22
