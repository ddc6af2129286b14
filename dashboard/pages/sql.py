from tripwire.dashboard.console import render

render()
