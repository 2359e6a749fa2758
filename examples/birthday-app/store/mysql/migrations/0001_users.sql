-- Users and their dates of birth. Names are ASCII letters, compared
-- case-sensitively (ascii_bin: the server's default collation would make
-- "alice" and "Alice" one user).
CREATE TABLE users (
	username      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
	date_of_birth DATE NOT NULL,
	created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;
