"""Two models, two optimizers stepped in turn (as a GAN is trained), and a script that ends by
itself after six steps: every optimizer's parameters are hashed after every step."""
import torch
from torch import nn

torch.manual_seed(0)
generator = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
critic = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
generator_optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
critic_optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
for _ in range(3):
    real = torch.randn(16, 4)
    fake = generator(torch.randn(16, 8)).detach()
    critic_optimizer.zero_grad()
    (critic(fake).mean() - critic(real).mean()).backward()
    critic_optimizer.step()
    generator_optimizer.zero_grad()
    (-critic(generator(torch.randn(16, 8))).mean()).backward()
    generator_optimizer.step()
