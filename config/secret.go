package config

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// SecretRef points at a secret without holding it: an environment variable
// of ferry's process, or a file. A literal value is possible (a plain
// string in the file) but discouraged; Parse warns about it for
// source.webhookSecret. The zero SecretRef means "not set".
type SecretRef struct {
	Env  string // name of an environment variable
	File string // absolute path of a file; one trailing newline is dropped
	// Literal is a value written in the configuration file itself.
	Literal string
	// Field is the dotted path of the reference in the file, used in errors.
	Field string
}

// IsZero reports whether no secret is configured.
func (s SecretRef) IsZero() bool { return s.Env == "" && s.File == "" && s.Literal == "" }

// Resolve returns the secret's value, reading the environment through getenv
// and files through readFile (os.Getenv and os.ReadFile in production). An
// unset or empty variable, an unreadable or empty file, and an unset
// reference are errors naming the field.
func (s SecretRef) Resolve(getenv func(string) string, readFile func(string) ([]byte, error)) (string, error) {
	switch {
	case s.Env != "":
		v := getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set", s.Field, s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := readFile(s.File)
		if err != nil {
			if pe, ok := errors.AsType[*fs.PathError](err); ok {
				err = pe.Err
			}
			return "", fmt.Errorf("%s: read secret file %s: %w", s.Field, s.File, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("%s: secret file %s is empty", s.Field, s.File)
		}
		return v, nil
	case s.Literal != "":
		return s.Literal, nil
	}
	return "", fmt.Errorf("%s: no secret configured", s.Field)
}

// String describes the reference without revealing a literal value.
func (s SecretRef) String() string {
	switch {
	case s.Env != "":
		return "env:" + s.Env
	case s.File != "":
		return "file:" + s.File
	case s.Literal != "":
		return redactedMark
	}
	return ""
}

const redactedMark = "<redacted>"
