"""tripwire.processors"""
