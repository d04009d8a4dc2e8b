//go:build !unix

package store

// writableDir: every step takes the lock here (see FileStore.step), whose
// open says when dir cannot be written.
func writableDir(string) error { return nil }
