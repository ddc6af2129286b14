"""tripwire.schemas"""
