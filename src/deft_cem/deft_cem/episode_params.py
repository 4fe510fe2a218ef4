"""The parameters of the episode node (`PARAMS`); values in deft_bringup/config/episode.yaml."""

from deft_cem.episode import REWARD_SOURCES
from deft_cem.episode_goals import SCENE_RESETS
from deft_common.ros_params import Param

PARAMS = (
    Param('default_reward_source', 'sim', 'Reward source when a goal leaves it empty.',
          choices=REWARD_SOURCES),
    Param('hand_config', '', 'Hand config YAML; empty = the installed LEAP-class 16-DOF hand.'),
    Param('run_root', '', 'Directory of fine-tuning runs; empty = $ROS_HOME/deft/runs.'),
    Param('elites', 5, 'Default number of elites E of fine_tune.', range=(1, 1000)),
    Param('contact_std', 0.02, 'Initial residual std of the contact point, m.', range=(0.0, 0.2)),
    Param('wrist_std', 0.2, 'Initial residual std of the wrist rotation, rad.', range=(0.0, 1.5)),
    Param('hand_std', 0.1, 'Initial residual std of each hand joint, rad.', range=(0.0, 1.0)),
    Param('tau_std', 0.1, 'Initial residual std of the trajectory scale.', range=(0.0, 1.0)),
    Param('heuristic_wrist_std', 0.4, 'Initial wrist residual std of a fine_tune from the '
          'heuristic prior, rad (it knows no wrist turn: it explores wider).',
          range=(0.0, 1.5)),
    Param('heuristic_hand_std', 0.3, 'Initial hand residual std of a fine_tune from the '
          'heuristic prior, rad (from half-closed, two std reach the open and closed poses).',
          range=(0.0, 1.0)),
    Param('contact_offset_max', 0.08, 'Bound of each contact residual component, m: a larger '
          'sampled residual is executed clipped to it (and logged).', range=(0.001, 0.5)),
    Param('wrist_residual_max', 1.5708, 'Bound of each wrist residual component, rad (clipped '
          'like contact_offset_max).', range=(0.01, 3.14159)),
    Param('post_grasp_waypoints', [0.0, 0.0, 0.06, 0.0, 0.0, 0.12],
          'Demonstrated post-grasp trajectory tau of tasks without a demonstration in '
          '`demonstrations`: x, y, z offsets from the grasp, m, base axes.'),
    Param('post_grasp_rotations', [0.0], 'Turns of the wrist along that tau: one rotation '
          'vector per waypoint, rad, base axes, applied to the grasp orientation ([0.0] or '
          'empty = keep the grasp orientation).'),
    Param('demonstrations', '', 'YAML of demonstrated taus per task text (waypoints, '
          "rotations); empty = the installed one of the simulated twin's tasks; 'none' = only "
          'post_grasp_waypoints.'),
    Param('approach_distance', 0.08, 'Pre-grasp distance before the contact, m.',
          range=(0.0, 0.5)),
    Param('settle_time', 0.3, 'Seconds the simulated scene settles after the motion before the '
          "sim reward scores it (on the node's clock: sim time in the sim profile).",
          range=(0.0, 10.0)),
    Param('hand_open_duration', 0.0, 'Seconds the hand takes to open when the episode ends '
          "(hand/grasp duration; 0 = the hand driver's default_duration). The sim profile "
          'opens it at once: sim/reset puts the simulated robot home right after.',
          range=(0.0, 60.0)),
    Param('scene_reset', 'sim', 'How the scene is put back after an episode: sim = call '
          'sim/reset; operator = announce it on reset_request and wait for the operator to call '
          'reset_done (std_srvs/Trigger, deft_score asks for it); none = leave it.',
          choices=SCENE_RESETS),
    Param('reset_timeout', 300.0, 'scene_reset operator: seconds to wait for reset_done.',
          range=(1.0, 86400.0)),
    Param('operator_timeout', 600.0, 'Seconds to wait for the operator reward.',
          range=(1.0, 86400.0)),
    Param('service_timeout', 10.0, 'Seconds to wait for a service to exist and answer.',
          range=(0.1, 600.0)),
    Param('max_unreachable', 5, 'fine_tune: an episode whose xi + eps the arm refuses before '
          'any motion (outside its workspace or reach) is recorded with reward 0 and the run '
          'goes on; this many in a row stop the run (the prior itself is likely out of reach); '
          '0 = stop at the first.', range=(0, 1000)),
    Param('arm_timeout', 120.0, 'Seconds the whole arm/execute_grasp may take.',
          range=(1.0, 3600.0)),
    Param('hand_timeout', 15.0, 'Seconds opening the hand may take.', range=(0.5, 600.0)),
    Param('embedding_encoder', 'resnet18', 'embedding reward: image encoder.',
          choices=('resnet18', 'r3m')),
    Param('embedding_weights', '', 'embedding reward: encoder weights (a torchvision ResNet-18 '
          'state dict, or an R3M checkpoint); empty = the embedding reward is off.'),
    Param('embedding_goal_image', '', 'embedding reward: image of the task done (PNG/JPEG).'),
    Param('embedding_scale', 20.0, 'embedding reward: distance scale d0 of reward = '
          'exp(-d / d0), in embedding units.', range=(1e-6, 1e6)),
    Param('image_qos', 'reliable', 'Reliability of the camera subscription (initial and final '
          'images): reliable or best_effort.', choices=('reliable', 'best_effort')),
    Param('final_image_timeout', 5.0, 'Seconds to wait for a camera frame taken after the '
          'episode began (I0) or after the motion (embedding reward).', range=(0.1, 120.0)),
    Param('policy_checkpoint', 'policy_cvae.pt', 'mode policy: residual policy checkpoint '
          '(deft_train_policy): an absolute path, or a file name in the directory of the '
          "goal's run_id (the default is what deft_train_policy writes there)."),
    Param('policy_resnet_weights', '', 'mode policy: ResNet-18 weights of phi(I0) if they moved '
          'since training (empty = the path stored in the checkpoint).'),
    Param('policy_sample', False, 'mode policy, cVAE: draw z ~ N(0, I) (seeded by the goal) '
          'instead of z = 0.'),
    Param('record_bags', True, 'Write a rosbag2 (MCAP) per fine-tuning episode to '
          '<run>/bags/<k>: initial and final frames, camera info, hand joint states, the prior, '
          'the record.'),
    Param('bag_compression', 'zstd', 'Episode bags: zstd = MCAP chunks compressed with zstd '
          '(about 30x smaller for camera frames; every MCAP reader reads them), none = raw.',
          choices=('zstd', 'none')),
    Param('bag_joint_rate_hz', 10.0, 'Rate hand joint states are kept for the bag, Hz.',
          range=(0.1, 1000.0)),
    Param('save_initial_images', True, "Store each fine-tuning episode's initial image I0 in "
          "the run (the residual policy's input)."),
)
