//go:build !linux

package atomicfile

// KeepAttrs keeps the extended attributes of the file replaced on Linux
// only; elsewhere a replaced file keeps its mode bits alone.
func (f *File) KeepAttrs(path string) error { return nil }

func copyAttrsFd(src, dst int) error { return nil }
