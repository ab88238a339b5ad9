"""Glue for the trainers Crucible's data is for (verl, TRL): rewards, tools and configs that use the pipelines'
own verification, tools and prompts."""
