from tripwire.dashboard.runs import render

render()
