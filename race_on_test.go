//go:build race

package main_test

// raceBuild makes the end-to-end binary carry the race detector too when
// the tests run with -race.
const raceBuild = true
