module gotel.demo/service

go 1.21
