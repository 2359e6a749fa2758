package cli

import (
	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/parts"
)

func newKeyCmd(sp serverParts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Show the key ferry signs images with",
		Long: `ferry signs every image that passed its tests with its own key and checks that
signature before every rollout (docs/trust.md). The key pair is made in the data
directory at the first start (signing.key, private, mode 0600; cosign.pub), or
ferry.yaml names one (signing.key).`,
	}
	return group(cmd, newKeyPublicCmd(sp))
}

func newKeyPublicCmd(sp serverParts) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "public",
		Short: "Print ferry's public key (PEM), for cosign verify --key",
		Long: `Print the public key of the key ferry signs images with, as PEM: the file
` + "`cosign verify --key`" + ` and ` + "`cosign verify-attestation --key`" + ` take. It reads the
configuration (-c) on the server's machine; without a key yet, it makes the key
pair ferry would make at its first start.

  ferry key public -c ferry.yaml > ferry.pub
  cosign verify --key ferry.pub --insecure-ignore-tlog IMAGE@DIGEST`,
		Args: cobra.NoArgs,
		RunE: sp.run(func(p parts.Parts, cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, path)
			if err != nil {
				return err
			}
			pem, err := p.PublicKey(cfg)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(pem)
			return err
		}),
	}
	cmd.Flags().StringVarP(&path, "config", "c", envOr("FERRY_CONFIG", "ferry.yaml"), "configuration file (env FERRY_CONFIG)")
	return cmd
}
