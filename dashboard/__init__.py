"""tripwire.dashboard"""
