"""The local AWS: emulators for the services moto does not really provide, a bootstrap, a launcher."""
