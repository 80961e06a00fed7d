module gotel.test/httpserver

go 1.21
