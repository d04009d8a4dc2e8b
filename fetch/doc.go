// Package fetch performs HTTP attempts for refetch: it builds and checks
// requests and the client, streams bodies into sinks (stdout buffered or
// streamed; a file replaced atomically, or a device, FIFO or mounted file
// written through once the body is complete), runs the resilience pipeline
// around them (Run, and its twin Check for health checks), serves stale or
// fallback data, and builds the JSON report. It classifies its own
// failures (sizes, redirects, output) and never prints. Its errors about
// one input (InvalidError, OutputError, JSONExpectationError) say what
// failed in its own terms and name no command-line flag: the command
// layer does.
package fetch
