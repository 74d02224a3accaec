from agentrag.cli import main

main()
