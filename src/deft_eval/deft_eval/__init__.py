"""What measures the DEFT stack in the MuJoCo twin: sim_eval, the affordance recipe, benchmarks."""
