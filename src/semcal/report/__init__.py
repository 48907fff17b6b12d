"""semcal.report"""
