// The SQL test service with the postgres driver.
package main

import (
	_ "github.com/lib/pq"

	"gotel.test/sqlapp/app"
)

func main() { app.Main("postgres") }
