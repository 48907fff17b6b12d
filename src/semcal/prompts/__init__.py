"""semcal.prompts"""
