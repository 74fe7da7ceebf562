from docqa.cli import cli

cli()
