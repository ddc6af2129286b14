"""``python -m tripwire.devenv kafka start|stop|status|fetch``."""

from tripwire.devenv.kafka import main

if __name__ == "__main__":
    raise SystemExit(main())
