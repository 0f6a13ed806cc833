from explorer.cli import main

if __name__ == "__main__":  # the live-tier worker is spawned and re-imports this module
    raise SystemExit(main())
