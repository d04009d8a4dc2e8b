// Package fetch performs HTTP attempts for refetch: it builds requests and
// the client, streams bodies into sinks (stdout buffered or streamed, or an
// atomically renamed file), runs the resilience pipeline around them, serves
// stale or fallback data, and builds the JSON report.
package fetch
