"""tripwire.producers"""
