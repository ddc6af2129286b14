from tripwire.dashboard.alerts import render

render()
