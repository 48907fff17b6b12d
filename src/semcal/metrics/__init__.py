"""semcal.metrics"""
