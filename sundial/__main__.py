from sundial.cli import main

main()
