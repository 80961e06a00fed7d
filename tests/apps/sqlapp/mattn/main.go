// The SQL test service with the sqlite3 driver.
package main

import (
	_ "github.com/mattn/go-sqlite3"

	"gotel.test/sqlapp/app"
)

func main() { app.Main("sqlite3") }
