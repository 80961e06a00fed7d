// The SQL test service with the sqlite driver.
package main

import (
	_ "modernc.org/sqlite"

	"gotel.test/sqlapp/app"
)

func main() { app.Main("sqlite") }
