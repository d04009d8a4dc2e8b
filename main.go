// Command refetch fetches from flaky HTTP endpoints through retries, a
// persisted circuit breaker and fallbacks. See README.md.
package main

import (
	"os"

	"github.com/refetch/refetch/cmd"
)

func main() {
	os.Exit(cmd.Main())
}
