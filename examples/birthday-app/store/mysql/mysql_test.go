package mysql_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/internal/testdb"
	"github.com/ferryhq/ferry/examples/birthday-app/store/mysql"
	"github.com/ferryhq/ferry/examples/birthday-app/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		url := testdb.MySQL(t)
		return func(ctx context.Context) (storetest.Store, error) { return mysql.Open(ctx, url) }
	})
}

func TestConfig(t *testing.T) {
	cfg, err := mysql.Config("mysql://app:p%40ss%2Fword@db.example:3307/birthday?timeout=2s&tls=false")
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	if cfg.User != "app" || cfg.Passwd != "p@ss/word" || cfg.Addr != "db.example:3307" || cfg.DBName != "birthday" || cfg.Timeout != 2*time.Second || !cfg.InterpolateParams {
		t.Errorf("Config = user %q pass %q addr %q db %q timeout %v interpolate %v, want app p@ss/word db.example:3307 birthday 2s true",
			cfg.User, cfg.Passwd, cfg.Addr, cfg.DBName, cfg.Timeout, cfg.InterpolateParams)
	}
	cfg, err = mysql.Config("mysql://app@db.example/birthday")
	if err != nil || cfg.Addr != "db.example:3306" || cfg.Timeout != 5*time.Second {
		t.Errorf("Config(no port) = %v, %v, want addr db.example:3306 and a 5s timeout", cfg, err)
	}
	for _, bad := range []string{
		"postgres://app@db/birthday",
		"mysql://app:secret@db.example:3306/",
		"mysql://app:secret@db.example:3306/a/b",
		"mysql:///birthday",
		"mysql://app:secret@db.example:3306/birthday?timeout=soon",
		"mysql://app:secret@db.example:port/birthday",
	} {
		_, err := mysql.Config(bad)
		if err == nil {
			t.Errorf("Config(%q) = nil error, want an error", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("Config(%q) = %v: the error shows the password", bad, err)
		}
	}
}
