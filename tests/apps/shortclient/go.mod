module example.com/shortclient

go 1.21
