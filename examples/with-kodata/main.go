// with-kodata serves the files tsko packs from kodata/ into the image at $KO_DATA_PATH, the way
// ko does: static assets travel with the binary without embedding them.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	dir := os.Getenv("KO_DATA_PATH")
	if dir == "" {
		dir = "kodata"
	}
	http.Handle("/", http.FileServer(http.Dir(dir)))
	log.Printf("with-kodata: serving %s on :%s", dir, port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
