// echoapp: an echo service for gotel's route tests. Routes in nested groups, a plain route, a
// middleware, and everything else a 404 (echo gives its not-found handler a path of its own,
// which is not a route). It prints "listening on ADDR" first, then serves.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("X-Echoapp", "1")
			return next(c)
		}
	})
	e.GET("/health", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	v1 := e.Group("/api").Group("/v1")
	users := v1.Group("/users")
	users.GET("/:id", func(c echo.Context) error {
		// The route's template is reported, never this value.
		return c.String(http.StatusOK, fmt.Sprintf("user %s (%s)", c.Param("id"), c.Path()))
	})
	users.POST("", func(c echo.Context) error { return c.String(http.StatusCreated, "created") })
	v1.GET("/files/*", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("*")) })

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, e))
}
