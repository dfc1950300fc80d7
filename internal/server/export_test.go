package server

// Patterns returns the API patterns s registered, for tests.
func Patterns(s *Server) []string { return s.patterns }

// RoleFor is roleFor, for tests.
var RoleFor = roleFor
