// Package arch holds no code: its test states the project's dependency
// rules and fails when an import breaks one. Read arch_test.go before
// adding an import between internal packages.
package arch
