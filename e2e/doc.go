// Package e2e holds the end-to-end tests: they run refetch as a user
// would. It has no code of its own; see e2e_test.go.
package e2e
