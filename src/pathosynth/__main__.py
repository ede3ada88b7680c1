from pathosynth.cli import main

main()
