// ginapp: a gin service for gotel's route tests. Routes in nested groups, a plain route, a
// middleware that calls c.Next (so the chain has more than one handler), and everything else
// a 404. It prints "listening on ADDR" first, then serves.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)

	r := gin.New()
	r.Use(func(c *gin.Context) {
		c.Header("X-Ginapp", "1")
		c.Next()
	})
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	v1 := r.Group("/api").Group("/v1")
	users := v1.Group("/users")
	users.GET("/:id", func(c *gin.Context) {
		// The route's template is reported, never this value.
		c.String(http.StatusOK, "user %s (%s)", c.Param("id"), c.FullPath())
	})
	users.POST("", func(c *gin.Context) { c.String(http.StatusCreated, "created") })
	v1.GET("/files/*path", func(c *gin.Context) { c.String(http.StatusOK, c.Param("path")) })

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, r))
}
