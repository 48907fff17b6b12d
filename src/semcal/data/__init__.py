"""semcal.data"""
