"""tripwire.sinks"""
