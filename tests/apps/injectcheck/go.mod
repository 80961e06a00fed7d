module injectcheck

go 1.24
