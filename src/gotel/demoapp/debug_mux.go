//go:build go1.22

//go:debug httpmuxgo121=0

package main
