module injectcheck

go 1.21
