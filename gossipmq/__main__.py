"""`python -m gossipmq ...` is `gossipctl ...`."""
from gossipmq.cli import main

if __name__ == "__main__":
    main()
