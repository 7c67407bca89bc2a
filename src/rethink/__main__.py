from rethink.cli import main

main()
