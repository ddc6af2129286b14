from tripwire.dashboard.killswitch import render

render()
