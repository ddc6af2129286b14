from tripwire.dashboard.overview import render

render()
