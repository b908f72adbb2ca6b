// hello is the smallest service tsko's examples build: an HTTP server on $PORT that answers with
// a version string, so a test (or you) can see which build is serving.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

// version is what the server answers with; edit it and save to watch tsko redeploy.
const version = "hello v1"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, version)
	})
	log.Printf("hello: listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
