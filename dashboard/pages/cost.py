from tripwire.dashboard.cost import render

render()
