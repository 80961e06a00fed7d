// The SQL test service with the pgx driver.
package main

import (
	_ "github.com/jackc/pgx/v5/stdlib"

	"gotel.test/sqlapp/app"
)

func main() { app.Main("pgx") }
